rule Bad_Private_String
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = "portcullis-bad" nocase private
  condition:
    $a
}
