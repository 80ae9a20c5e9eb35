<#
.SYNOPSIS
    Shows the Portcullis agent's status to the person at this HMI.
.DESCRIPTION
    The service runs as LocalSystem in session 0 and cannot show anything in
    a user's session itself. This helper runs in the user's session (the MSI
    starts it at every logon from HKLM\...\Run; install.ps1 users can do the
    same), reads status.json from the status folder the service writes
    (users may read it, not write it), and shows a notification when a drive
    is being checked ("do not remove") and when its result is known, and the
    progress in the tray icon's tooltip; its menu opens the last drive's
    report. It only reads the folder: it never talks to the service, and it
    runs nothing from the drive.
    Needs a desktop (not Server Core) and Windows PowerShell 5.1 with .NET
    Framework (Windows 10 / Server 2016 and later). Where scripts must be
    signed (AllSigned by GPO), sign it with the plant's code-signing key.
.PARAMETER StatusFolder
    The service's status folder (the watch configuration's statusFolder).
.PARAMETER PollMilliseconds
    How often status.json is read.
#>
[CmdletBinding()]
param(
    [string] $StatusFolder = 'C:\Portcullis\Status',
    [ValidateRange(250, 60000)] [int] $PollMilliseconds = 1000
)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
Add-Type -AssemblyName System.Windows.Forms
Add-Type -AssemblyName System.Drawing

$statusPath = Join-Path $StatusFolder 'status.json'
$latestPath = Join-Path $StatusFolder 'latest.txt'

function Read-Status {
    try { return Get-Content -LiteralPath $statusPath -Raw -Encoding UTF8 | ConvertFrom-Json } catch { return $null }
}

$icon = New-Object System.Windows.Forms.NotifyIcon
$icon.Icon = [System.Drawing.SystemIcons]::Shield
$icon.Text = 'Portcullis'
$icon.Visible = $true
$menu = New-Object System.Windows.Forms.ContextMenuStrip
$openReport = $menu.Items.Add('Open the last drive report')
$openReport.add_Click({
    if (Test-Path -LiteralPath $latestPath -PathType Leaf) { Start-Process -FilePath "$env:SystemRoot\System32\notepad.exe" -ArgumentList @("`"$latestPath`"") }
})
$quit = $menu.Items.Add('Hide until next logon')
$quit.add_Click({ $icon.Visible = $false; [System.Windows.Forms.Application]::Exit() })
$icon.ContextMenuStrip = $menu

# What is there at logon is old news: shown in the tooltip only.
$initial = Read-Status
$script:lastTime = if ($null -ne $initial) { [string] $initial.time } else { '' }

$timer = New-Object System.Windows.Forms.Timer
$timer.Interval = $PollMilliseconds
$timer.add_Tick({
    $status = Read-Status
    if ($null -eq $status -or [string] $status.time -eq $script:lastTime) { return }
    $script:lastTime = [string] $status.time
    $tip = "Portcullis: $($status.state)"
    if ($null -ne $status.progress) { $tip = "Portcullis: $($status.progress.filesDone) of $($status.progress.filesTotal) files checked" }
    $icon.Text = $tip.Substring(0, [Math]::Min(63, $tip.Length)) # NotifyIcon.Text holds at most 63 characters
    # A notification when a drive is seen and when its result is known; progress stays in the tooltip.
    $kind = switch ([string] $status.state) {
        'checking' { 'Info' }
        'done' { 'Info' }
        'partial' { 'Warning' }
        'refused' { 'Error' }
        'error' { 'Error' }
        default { $null }
    }
    if ($null -ne $kind) { $icon.ShowBalloonTip(15000, 'Portcullis', [string] $status.text, [System.Windows.Forms.ToolTipIcon]::$kind) }
})
$timer.Start()
try {
    [System.Windows.Forms.Application]::Run()
} finally {
    $icon.Dispose()
}
