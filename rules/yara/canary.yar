// Start-up canary: matches only the fixed Portcullis test string below, so
// the kiosk can prove that the YARA rules are live inside clamd before it
// scans any drive. Never matches real content.
rule Portcullis_Canary
{
  meta:
    description = "Portcullis start-up canary: proves YARA rules are loaded in the scan engine"
    author = "Portcullis"
    reference = "docs/yara-engine.md"
    severity = "low"
  strings:
    $canary = "PORTCULLIS-YARA-CANARY-6b1f0e9c" nocase
  condition:
    $canary
}
