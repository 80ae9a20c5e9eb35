rule Bad_Big_Endian
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = "portcullis-bad" nocase
  condition:
    $a and uint32be(0) == 0x4D5A9000
}
