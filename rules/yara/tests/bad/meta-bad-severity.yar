rule Bad_Meta_Severity
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "urgent"
  strings:
    $a = "portcullis-bad" nocase
  condition:
    $a
}
