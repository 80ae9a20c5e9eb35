rule Bad_Length
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = /portcullis-[a-z]+/
  condition:
    !a[1] > 14
}
