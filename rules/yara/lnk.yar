// Windows shortcut (.lnk) files whose target is a script host or shell with
// arguments that run code: the classic USB "shortcut dropper".

rule Portcullis_LNK_Script_Launcher
{
  meta:
    description = "Shortcut (.lnk) starts cmd/PowerShell/mshta/wscript/rundll32 with code-running arguments"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1204/002/"
    severity = "high"
  strings:
    // [MS-SHLLINK] 2.1: HeaderSize 0x4C, then LinkCLSID 00021401-0000-0000-C000-000000000046
    $clsid = { 01 14 02 00 00 00 00 00 C0 00 00 00 00 00 00 46 }
    $host_cmd = "cmd.exe" ascii wide nocase
    $host_ps = "powershell" ascii wide nocase
    $host_mshta = "mshta" ascii wide nocase
    $host_wscript = "wscript" ascii wide nocase
    $host_cscript = "cscript" ascii wide nocase
    $host_rundll = "rundll32" ascii wide nocase
    $host_regsvr = "regsvr32" ascii wide nocase
    $host_certutil = "certutil" ascii wide nocase
    $arg_c = "/c " ascii wide nocase
    $arg_k = "/k " ascii wide nocase
    $arg_hidden = "hidden" ascii wide nocase
    $arg_enc = "-enc" ascii wide nocase
    $arg_http = "http:" ascii wide nocase
    $arg_https = "https:" ascii wide nocase
    $arg_js = "javascript:" ascii wide nocase
    $arg_vbs = "vbscript:" ascii wide nocase
    $arg_b64 = "FromBase64String" ascii wide nocase
    $arg_iex = "iex" ascii wide nocase fullword
  condition:
    uint32(0) == 0x0000004C and $clsid at 4 and any of ($host_*) and any of ($arg_*)
}
