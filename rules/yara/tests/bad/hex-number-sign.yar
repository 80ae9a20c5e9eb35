rule Bad_Hex_Number_Sign
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = "portcullis-bad" nocase
  condition:
    $a and uint32(0) == 0xDEADBEEF
}
