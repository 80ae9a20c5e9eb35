<#
.SYNOPSIS
    Removes the Portcullis HMI agent service and its program files.

.DESCRIPTION
    Idempotent; supports -WhatIf and -Confirm, and -Force for unattended use.
    By default it keeps:
      - the data folder (configuration, trust store and the hash-chained
        decision log, which is audit evidence): pass -RemoveData to delete it;
      - the removable-storage deny policy, because removing it re-opens USB
        access on this HMI: pass -RemoveStoragePolicy to remove it;
      - the destination folder and the files imported into it.

.PARAMETER Force
    Never prompt, for unattended removal; ConfirmImpact is Medium, so only
    -Confirm prompts anyway. -WhatIf still only reports.

.EXAMPLE
    .\uninstall.ps1 -WhatIf
.EXAMPLE
    powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File .\uninstall.ps1 -Force
#>
[CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'Medium')]
param(
    [string] $InstallDir = (Join-Path $env:ProgramFiles 'Portcullis'),
    [string] $DataDir = (Join-Path $env:ProgramData 'Portcullis'),
    [string] $ServiceName = 'PortcullisAgent',
    [switch] $RemoveData,
    [switch] $RemoveStoragePolicy,
    # Never prompt (unattended removal); -WhatIf still only reports, -Confirm still asks.
    [switch] $Force
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
# Unattended (SCCM, Intune, GPO start-up script): nobody is there to answer a prompt. ConfirmImpact
# Medium already asks only under -Confirm; -Force also overrides a lowered $ConfirmPreference.
if ($Force -and -not $PSBoundParameters.ContainsKey('Confirm')) { $ConfirmPreference = 'None' }
# A 32-bit PowerShell on 64-bit Windows (an SCCM program not set to run as 64-bit) sees
# "Program Files (x86)" and may see the WOW6432Node registry view instead of the real policy keys.
if ([Environment]::Is64BitOperatingSystem -and -not [Environment]::Is64BitProcess) {
    throw 'Run the 64-bit PowerShell: %SystemRoot%\sysnative\WindowsPowerShell\v1.0\powershell.exe from a 32-bit host (docs/agent.md).'
}

$principal = [Security.Principal.WindowsPrincipal] [Security.Principal.WindowsIdentity]::GetCurrent()
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'Run this script from an elevated PowerShell (Run as administrator).'
}

$service = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue
if ($null -ne $service) {
    if ($service.Status -ne 'Stopped' -and $PSCmdlet.ShouldProcess($ServiceName, 'Stop service')) { Stop-Service -Name $ServiceName -Confirm:$false }
    if ($PSCmdlet.ShouldProcess($ServiceName, 'Delete service')) {
        # Remove-Service needs PowerShell 6+; sc.exe works on Windows PowerShell 5.1 too.
        & sc.exe delete $ServiceName
        if ($LASTEXITCODE -ne 0) { throw "sc.exe delete $ServiceName failed with exit code $LASTEXITCODE" }
    }
}

foreach ($name in @('portcullis-agent.exe', 'portcullis-agent-service.exe', 'portcullis-agent-service.xml')) {
    $path = Join-Path $InstallDir $name
    if ((Test-Path -LiteralPath $path) -and $PSCmdlet.ShouldProcess($path, 'Delete')) { Remove-Item -LiteralPath $path -Force -Confirm:$false }
}
if ((Test-Path -LiteralPath $InstallDir) -and -not (Get-ChildItem -LiteralPath $InstallDir -Force) -and $PSCmdlet.ShouldProcess($InstallDir, 'Delete empty folder')) {
    Remove-Item -LiteralPath $InstallDir -Force -Confirm:$false
}

if ($RemoveData) {
    if ((Test-Path -LiteralPath $DataDir) -and $PSCmdlet.ShouldProcess($DataDir, 'Delete configuration, trust store and decision log (export the log first)')) {
        Remove-Item -LiteralPath $DataDir -Recurse -Force -Confirm:$false
    }
} elseif (Test-Path -LiteralPath $DataDir) {
    Write-Warning "Kept $DataDir (trust store and decision log). Export the log for review before removing it with -RemoveData."
}

if ($RemoveStoragePolicy) {
    $key = 'HKLM:\Software\Policies\Microsoft\Windows\RemovableStorageDevices'
    $value = Get-ItemProperty -LiteralPath $key -Name 'Deny_All' -ErrorAction SilentlyContinue
    if ($null -ne $value -and $PSCmdlet.ShouldProcess("$key\Deny_All", 'Delete value: users regain direct access to USB storage')) {
        Remove-ItemProperty -LiteralPath $key -Name 'Deny_All' -Force -Confirm:$false
    }
} else {
    Write-Warning 'Kept the removable-storage deny policy: USB storage stays closed to users on this HMI.'
}
