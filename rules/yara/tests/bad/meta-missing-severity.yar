rule Bad_Meta_Missing
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
  strings:
    $a = "portcullis-bad" nocase
  condition:
    $a
}
