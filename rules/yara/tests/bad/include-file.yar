include "canary.yar"

rule Bad_Include
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
