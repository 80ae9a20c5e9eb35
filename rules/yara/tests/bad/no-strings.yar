rule Bad_No_Strings
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  condition:
    filesize > 100
}
