// Commands ransomware runs before encrypting: delete shadow copies and
// backups, switch off boot recovery.

rule Portcullis_Shadow_Copy_Deletion
{
  meta:
    description = "Deletes volume shadow copies, backup catalogues or disables boot recovery"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1490/"
    severity = "critical"
  strings:
    $vss_delete = "delete shadows" ascii wide nocase
    $vss_resize = "resize shadowstorage" ascii wide nocase
    $wmic = "shadowcopy delete" ascii wide nocase
    $wmi_class = "Win32_ShadowCopy" ascii wide nocase
    $wmi_delete = ".Delete()" ascii wide nocase
    $cim_remove = "Remove-CimInstance" ascii wide nocase
    $wbadmin = "delete catalog" ascii wide nocase
    $wbadmin_backup = "delete systemstatebackup" ascii wide nocase
    $bcd_recovery = "recoveryenabled no" ascii wide nocase
    $bcd_policy = "bootstatuspolicy ignoreallfailures" ascii wide nocase
  condition:
    $vss_delete or $vss_resize or $wmic or $wbadmin or $wbadmin_backup or $bcd_recovery or
    $bcd_policy or ($wmi_class and ($wmi_delete or $cim_remove))
}
