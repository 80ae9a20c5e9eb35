rule Bad_Hex_Pair
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $a = { 4D ?? 5A ?? 90 }
  condition:
    $a
}
