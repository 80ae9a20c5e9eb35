// Suspicious PowerShell: encoded command lines, download-and-run cradles and
// AMSI bypasses. Text strings are nocase because clamd lowercases text and
// HTML-typed files before YARA sees them (docs/yara-engine.md).

rule Portcullis_PowerShell_Encoded_Command
{
  meta:
    description = "PowerShell started with an encoded (base64) command line"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1059/001/"
    severity = "high"
  strings:
    $ps = "powershell" ascii wide nocase
    $pwsh = "pwsh -" ascii wide nocase
    $enc1 = " -enc " ascii wide nocase
    $enc2 = " -encodedcommand " ascii wide nocase
    $enc3 = " -ec " ascii wide nocase
    $enc4 = " -en " ascii wide nocase
    $enc5 = " -encod " ascii wide nocase
    $enc6 = " -e " ascii wide nocase
    // Base64 of UTF-16LE "IEX", "$" and "Invoke", as -EncodedCommand carries them.
    // nocase: clamd lowercases text before YARA, so the exact case cannot be relied on.
    $b64_iex = "SQBFAFgA" ascii wide nocase
    $b64_dollar = "JAB" ascii wide nocase
    $b64_invoke = "SQBuAHYAbwBrAGUA" ascii wide nocase
  condition:
    ($ps or $pwsh) and any of ($enc*) and any of ($b64_*)
}

rule Portcullis_PowerShell_Download_Cradle
{
  meta:
    description = "PowerShell downloads content from the network and executes it in memory"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1105/"
    severity = "high"
  strings:
    // Five bytes or more each: clamd also matches decoded views of binaries
    // (e.g. random bytes read as UTF-16 text), where 3-letter aliases turn up.
    $dl_string = ".DownloadString(" ascii wide nocase
    $dl_data = ".DownloadData(" ascii wide nocase
    $dl_webclient = "Net.WebClient" ascii wide nocase
    $dl_iwr = "Invoke-WebRequest" ascii wide nocase
    $dl_irm = "Invoke-RestMethod" ascii wide nocase
    $dl_iwr_alias = "iwr http" ascii wide nocase
    $dl_irm_alias = "irm http" ascii wide nocase
    $dl_xmlhttp = "Msxml2.XMLHTTP" ascii wide nocase
    $ex_iex_paren = "iex (" ascii wide nocase
    $ex_iex_paren2 = "iex(" ascii wide nocase
    $ex_invoke = "Invoke-Expression" ascii wide nocase
    $ex_pipe = "| iex" ascii wide nocase
    $ex_pipe2 = "|iex" ascii wide nocase
  condition:
    any of ($dl_*) and any of ($ex_*)
}

rule Portcullis_AMSI_Bypass
{
  meta:
    description = "Script tampers with the Antimalware Scan Interface (AMSI) to hide from scanning"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1562/001/"
    severity = "critical"
  strings:
    $utils = "Management.Automation.AmsiUtils" ascii wide nocase
    $failed = "amsiInitFailed" ascii wide nocase
    $scanbuf = "AmsiScanBuffer" ascii wide nocase
    $dll = "amsi.dll" ascii wide nocase
    $protect = "VirtualProtect" ascii wide nocase
  condition:
    // Not PE: the genuine System.Management.Automation.dll names these members itself.
    uint16(0) != 0x5A4D and ($utils or $failed or ($scanbuf and $dll and $protect))
}
