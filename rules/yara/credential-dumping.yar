// Credential dumpers: Mimikatz and friends, LSASS memory dumps, SAM hive
// export.

rule Portcullis_Credential_Dumper
{
  meta:
    description = "Credential-dumping tool or command (Mimikatz modules, LSASS dump, SAM/SECURITY hive export)"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1003/"
    severity = "critical"
  strings:
    $mk_logon = "sekurlsa::logonpasswords" ascii wide nocase
    $mk_sekurlsa = "sekurlsa::" ascii wide nocase
    $mk_lsadump = "lsadump::" ascii wide nocase
    $mk_priv = "privilege::debug" ascii wide nocase
    $mk_author = "gentilkiwi" ascii wide nocase
    $mk_kerberos = "kerberos::golden" ascii wide nocase
    $lsass = "lsass" ascii wide nocase
    $procdump = "procdump" ascii wide nocase
    $procdump_ma = " -ma " ascii wide nocase
    $comsvcs = "comsvcs" ascii wide nocase
    $minidump = "MiniDump" ascii wide nocase
    $reg_save = "reg save" ascii wide nocase
    $hive_sam = "hklm\\sam" ascii wide nocase
    $hive_security = "hklm\\security" ascii wide nocase
  condition:
    any of ($mk_*) or
    ($lsass and (($procdump and $procdump_ma) or ($comsvcs and $minidump))) or
    ($reg_save and ($hive_sam or $hive_security))
}
