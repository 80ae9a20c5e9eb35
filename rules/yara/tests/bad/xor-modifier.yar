rule Bad_Xor
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = "portcullis-bad" xor
  condition:
    $a
}
