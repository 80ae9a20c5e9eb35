rule Bad_Twice
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = "portcullis-one" nocase
  condition:
    $a
}

rule Bad_Twice
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = "portcullis-two" nocase
  condition:
    $a
}
