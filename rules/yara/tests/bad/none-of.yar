rule Bad_None
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = "portcullis-bad" nocase
    $b = "portcullis-good" nocase
  condition:
    $a and none of ($b)
}
