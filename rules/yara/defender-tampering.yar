// Scripts that switch off Windows security tooling before doing something
// else: Defender preferences, Defender policy keys, AV services, firewall.

rule Portcullis_Defender_Tampering
{
  meta:
    description = "Script disables Microsoft Defender protections or adds Defender exclusions"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1562/001/"
    severity = "high"
  strings:
    $cmd_set = "Set-MpPreference" ascii wide nocase
    $cmd_add = "Add-MpPreference" ascii wide nocase
    $p_rtm = "-DisableRealtimeMonitoring" ascii wide nocase
    $p_ioav = "-DisableIOAVProtection" ascii wide nocase
    $p_bm = "-DisableBehaviorMonitoring" ascii wide nocase
    $p_script = "-DisableScriptScanning" ascii wide nocase
    $p_maps = "-MAPSReporting 0" ascii wide nocase
    $x_path = "-ExclusionPath" ascii wide nocase
    $x_proc = "-ExclusionProcess" ascii wide nocase
    $x_ext = "-ExclusionExtension" ascii wide nocase
    $reg_key = "\\Policies\\Microsoft\\Windows Defender" ascii wide nocase
    $reg_val = "DisableAntiSpyware" ascii wide nocase
  condition:
    ($cmd_set and any of ($p_*)) or ($cmd_add and any of ($x_*)) or ($reg_key and $reg_val)
}

rule Portcullis_Security_Service_Stop
{
  meta:
    description = "Script stops or reconfigures an antivirus / EDR / firewall service (sc, net, Stop-/Set-Service)"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1489/"
    severity = "high"
  strings:
    // "stop S" covers sc and net stop, "config S" sc config; -Name S needs a Stop-/Set-Service.
    $stop_0 = "stop WinDefend" ascii wide nocase
    $cfg_0 = "config WinDefend" ascii wide nocase
    $pss_0 = "Stop-Service WinDefend" ascii wide nocase
    $pse_0 = "Set-Service WinDefend" ascii wide nocase
    $name_0 = "-Name WinDefend" ascii wide nocase
    $stop_1 = "stop WdNisSvc" ascii wide nocase
    $cfg_1 = "config WdNisSvc" ascii wide nocase
    $pss_1 = "Stop-Service WdNisSvc" ascii wide nocase
    $pse_1 = "Set-Service WdNisSvc" ascii wide nocase
    $name_1 = "-Name WdNisSvc" ascii wide nocase
    $stop_2 = "stop MpsSvc" ascii wide nocase
    $cfg_2 = "config MpsSvc" ascii wide nocase
    $pss_2 = "Stop-Service MpsSvc" ascii wide nocase
    $pse_2 = "Set-Service MpsSvc" ascii wide nocase
    $name_2 = "-Name MpsSvc" ascii wide nocase
    $stop_3 = "stop SepMasterService" ascii wide nocase
    $cfg_3 = "config SepMasterService" ascii wide nocase
    $pss_3 = "Stop-Service SepMasterService" ascii wide nocase
    $pse_3 = "Set-Service SepMasterService" ascii wide nocase
    $name_3 = "-Name SepMasterService" ascii wide nocase
    $stop_4 = "stop McShield" ascii wide nocase
    $cfg_4 = "config McShield" ascii wide nocase
    $pss_4 = "Stop-Service McShield" ascii wide nocase
    $pse_4 = "Set-Service McShield" ascii wide nocase
    $name_4 = "-Name McShield" ascii wide nocase
    $stop_5 = "stop SAVService" ascii wide nocase
    $cfg_5 = "config SAVService" ascii wide nocase
    $pss_5 = "Stop-Service SAVService" ascii wide nocase
    $pse_5 = "Set-Service SAVService" ascii wide nocase
    $name_5 = "-Name SAVService" ascii wide nocase
    $stop_6 = "stop CSFalconService" ascii wide nocase
    $cfg_6 = "config CSFalconService" ascii wide nocase
    $pss_6 = "Stop-Service CSFalconService" ascii wide nocase
    $pse_6 = "Set-Service CSFalconService" ascii wide nocase
    $name_6 = "-Name CSFalconService" ascii wide nocase
    $stop_7 = "stop CylanceSvc" ascii wide nocase
    $cfg_7 = "config CylanceSvc" ascii wide nocase
    $pss_7 = "Stop-Service CylanceSvc" ascii wide nocase
    $pse_7 = "Set-Service CylanceSvc" ascii wide nocase
    $name_7 = "-Name CylanceSvc" ascii wide nocase
    $ps_stop = "Stop-Service" ascii wide nocase
    $ps_set = "Set-Service" ascii wide nocase
  condition:
    any of ($stop_*, $cfg_*, $pss_*, $pse_*) or (any of ($name_*) and ($ps_stop or $ps_set))
}

rule Portcullis_Firewall_Disable
{
  meta:
    description = "Script turns the Windows firewall off"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1562/004/"
    severity = "high"
  strings:
    $netsh_off = "advfirewall set allprofiles state off" ascii wide nocase
    $netsh_cur = "advfirewall set currentprofile state off" ascii wide nocase
    $netsh_dom = "advfirewall set domainprofile state off" ascii wide nocase
    $netsh_old = "firewall set opmode disable" ascii wide nocase
    $ps_cmd = "Set-NetFirewallProfile" ascii wide nocase
    $ps_false = "-Enabled False" ascii wide nocase
    $ps_zero = "-Enabled 0" ascii wide nocase
  condition:
    any of ($netsh_*) or ($ps_cmd and ($ps_false or $ps_zero))
}
