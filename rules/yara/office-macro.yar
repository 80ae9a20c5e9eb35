// VBA macros that run on open and start a shell. clamd extracts VBA source
// from OLE2 and OOXML documents, so the rule sees the macro text itself.

rule Portcullis_Office_Macro_AutoExec_Shell
{
  meta:
    description = "Office VBA macro runs automatically on open and starts a program or shell"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1204/002/"
    severity = "high"
  strings:
    $auto_open = "AutoOpen" ascii wide nocase
    $auto_open2 = "Auto_Open" ascii wide nocase
    $auto_doc = "Document_Open" ascii wide nocase
    $auto_wb = "Workbook_Open" ascii wide nocase
    $auto_exec = "AutoExec" ascii wide nocase
    $auto_close = "Document_Close" ascii wide nocase
    $shell_fn = "Shell(" ascii wide nocase
    $shell_stmt = "Shell " ascii wide nocase
    $shell_wsh = "WScript.Shell" ascii wide nocase
    $shell_app = "Shell.Application" ascii wide nocase
    $shell_exec = "ShellExecute" ascii wide nocase
    $shell_wmi = "Win32_Process" ascii wide nocase
    $shell_ps = "powershell" ascii wide nocase
  condition:
    any of ($auto_*) and any of ($shell_*)
}
