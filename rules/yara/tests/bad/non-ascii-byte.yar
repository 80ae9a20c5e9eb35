rule Bad_Non_Ascii
{
  meta:
    description = "bad rule corpus ‮ reversed"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = "portcullis-bad" nocase
  condition:
    $a
}
