// A third-party rule file of the common public kind, written for libyara:
// a module import, case-sensitive strings, a condition that needs the pe
// module. libclamav cannot parse the condition ("undefined identifier pe"),
// drops the rule, and every YARA rule it loads after this file is counted
// but never matches (ClamAV 1.4.6; docs/yara-engine.md). The loader refuses
// it; in the ClamAV database folder the kiosk refuses to start.
import "pe"

rule ThirdParty_Loader_Exports
{
  meta:
    description = "Loader DLL by its export or by several of its file names"
    author = "a third party"
  strings:
    $s1 = "loader-agent.exe" fullword ascii
    $s2 = "loader-service.exe" fullword ascii
    $s3 = "loader-update.exe" fullword ascii
    $s4 = "loader-config.dat" fullword ascii
  condition:
    uint16(0) == 0x5a4d and filesize < 20KB and (pe.exports("LoaderStart") or 3 of them)
}

rule ThirdParty_Dropper_Marker
{
  meta:
    description = "Dropper by a marker string"
    author = "a third party"
  strings:
    $a = "dropper-marker-string" ascii
  condition:
    $a
}
