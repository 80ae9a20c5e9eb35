// autorun.inf that launches a program. Windows no longer honours AutoRun for
// USB drives by default, but the entries still show intent and older HMIs
// (or ones with changed policy) may run them.

rule Portcullis_Autorun_Inf_Launch
{
  meta:
    description = "autorun.inf with an open/shellexecute/shell command entry that launches a program"
    author = "Portcullis"
    reference = "https://learn.microsoft.com/en-us/windows/win32/shell/autorun-cmds"
    severity = "high"
  strings:
    $section = "[autorun]" nocase
    $open = "open=" nocase
    $open_sp = "open =" nocase
    $shellexec = "shellexecute=" nocase
    $shellexec_sp = "shellexecute =" nocase
    $shell_cmd = "\\command=" nocase
    $shell_cmd_sp = "\\command =" nocase
    $useautoplay = "useautoplay=" nocase
  condition:
    filesize < 64KB and $section and any of ($open*, $shellexec*, $shell_cmd*, $useautoplay)
}
