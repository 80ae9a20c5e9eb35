rule Bad_Percent
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
    50% of them
}
