rule Bad_Case
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = "Portcullis-Bad"
  condition:
    $a
}
