rule Bad_Unreferenced
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = "portcullis-bad" nocase
    $b = "portcullis-unused" nocase
  condition:
    $a
}
