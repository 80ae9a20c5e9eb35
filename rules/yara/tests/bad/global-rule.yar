global rule Bad_Global
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = "portcullis-bad" nocase
  condition:
    $a
}
