rule Bad_Regex_Nocase
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = /portcullis-[0-9]+/i
  condition:
    $a
}
