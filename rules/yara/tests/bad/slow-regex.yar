rule Bad_Slow
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = /portcullis.*bad/
  condition:
    $a
}
