<#
.SYNOPSIS
    Removes the Portcullis HMI agent service and its program files.

.DESCRIPTION
    Idempotent; supports -WhatIf and -Confirm, and -Force for unattended use.
    By default it keeps:
      - the data folder (configuration, trust store and the hash-chained
        decision log, which is audit evidence): pass -RemoveData to delete it;
      - the removable-storage deny policy, because removing it re-opens USB
        access on this HMI: pass -RemoveStoragePolicy to put back the values
        install.ps1 recorded before the first install
        (-DataDir\policy-before-install.json): Deny_All and
        NoDriveTypeAutoRun are set to what they were, or deleted if they were
        absent, and each is named in the output. Without that record (an
        install by an older install.ps1) it deletes Deny_All only, and warns;
      - the destination folder and the files imported into it.

.PARAMETER RemoveStoragePolicy
    Restore the policy values recorded before the first install (alias
    -RestoreStoragePolicy). A record that is not as install.ps1 writes it
    stops the script before anything is changed.
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
    [Alias('RestoreStoragePolicy')] [switch] $RemoveStoragePolicy,
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

function Write-Step([string] $Text) { Write-Host "Portcullis uninstall: $Text" }

# The registry values install.ps1 sets (its $PolicyValues), the only ones a record may restore.
$StoragePolicyKey = 'HKLM:\Software\Policies\Microsoft\Windows\RemovableStorageDevices'
$AutoRunKey = 'HKLM:\Software\Microsoft\Windows\CurrentVersion\Policies\Explorer'
$PolicyValues = @(
    @{ Key = $StoragePolicyKey; Name = 'Deny_All' },
    @{ Key = $AutoRunKey; Name = 'NoDriveTypeAutoRun' }
)
$PolicyKinds = @('String', 'ExpandString', 'Binary', 'DWord', 'MultiString', 'QWord')
$policyRecordPath = Join-Path $DataDir 'policy-before-install.json'

function Get-RecordField($Object, [string] $Name) {
    if ($null -eq $Object -or @($Object.PSObject.Properties.Name) -notcontains $Name) {
        throw "${policyRecordPath}: field '$Name' is missing: restore the policy by hand, or delete the record to fall back to deleting Deny_All."
    }
    $Object.$Name
}

# Reads and checks the record as install.ps1 writes it: format 1, exactly the values install.ps1
# sets, each once. Anything else stops the script before it changes anything.
function Read-PolicyRecord {
    if (-not (Test-Path -LiteralPath $policyRecordPath -PathType Leaf)) { return $null }
    try {
        $record = Get-Content -LiteralPath $policyRecordPath -Raw | ConvertFrom-Json
    } catch {
        throw "${policyRecordPath}: not JSON ($($_.Exception.Message)): restore the policy by hand, or delete the record to fall back to deleting Deny_All."
    }
    if ((Get-RecordField $record 'formatVersion') -ne 1) { throw "${policyRecordPath}: formatVersion is not 1." }
    $entries = @(Get-RecordField $record 'values')
    $checked = @()
    foreach ($policy in $PolicyValues) {
        $matching = @($entries | Where-Object { (Get-RecordField $_ 'key') -eq $policy.Key -and (Get-RecordField $_ 'name') -eq $policy.Name })
        if ($matching.Count -ne 1) { throw "${policyRecordPath}: expected 1 entry for $($policy.Key)\$($policy.Name), got $($matching.Count)." }
        $entry = $matching[0]
        $present = Get-RecordField $entry 'present'
        $keyExisted = Get-RecordField $entry 'keyExisted'
        if ($present -isnot [bool] -or $keyExisted -isnot [bool]) { throw "${policyRecordPath}: present and keyExisted must be true or false." }
        $kind = Get-RecordField $entry 'kind'
        if ($present -and $PolicyKinds -notcontains $kind) { throw "${policyRecordPath}: $($policy.Name) has kind '$kind', not one of $($PolicyKinds -join ', ')." }
        $checked += [pscustomobject]@{ Key = $policy.Key; Name = $policy.Name; KeyExisted = $keyExisted; Present = $present; Kind = $kind; Value = (Get-RecordField $entry 'value') }
    }
    if ($entries.Count -ne $checked.Count) { throw "${policyRecordPath}: expected $($checked.Count) entries, got $($entries.Count)." }
    $checked
}

function Restore-PolicyValue($Entry) {
    $target = "$($Entry.Key)\$($Entry.Name)"
    $item = Get-Item -LiteralPath $Entry.Key -ErrorAction SilentlyContinue
    $presentNow = $null -ne $item -and @($item.GetValueNames()) -contains $Entry.Name
    if ($Entry.Present) {
        # Assigned inside the switch: switch output would unroll a byte[] or string[].
        switch ($Entry.Kind) {
            'DWord' { $data = [int] $Entry.Value }
            'QWord' { $data = [long] $Entry.Value }
            'Binary' { $data = [byte[]] @($Entry.Value) }
            'MultiString' { $data = [string[]] @($Entry.Value) }
            default { $data = [string] $Entry.Value }
        }
        $shown = "$($Entry.Kind) $(@($Entry.Value) -join ',')"
        if ($PSCmdlet.ShouldProcess($target, "Restore $shown (its value before the first install)")) {
            if ($null -eq $item) { New-Item -Path $Entry.Key -Force -Confirm:$false | Out-Null }
            New-ItemProperty -LiteralPath $Entry.Key -Name $Entry.Name -PropertyType $Entry.Kind -Value $data -Force -Confirm:$false | Out-Null
            Write-Step "restored $target to $shown (its value before the first install)."
        }
        return
    }
    if (-not $presentNow) {
        Write-Step "$target is absent, as it was before the first install."
    } elseif ($PSCmdlet.ShouldProcess($target, 'Delete value (absent before the first install)')) {
        Remove-ItemProperty -LiteralPath $Entry.Key -Name $Entry.Name -Force -Confirm:$false
        Write-Step "deleted $target (absent before the first install)."
    }
    # A key install.ps1 created goes too, but only while nothing else has been put in it.
    $item = Get-Item -LiteralPath $Entry.Key -ErrorAction SilentlyContinue
    if (-not $Entry.KeyExisted -and $null -ne $item -and $item.ValueCount -eq 0 -and $item.SubKeyCount -eq 0 -and
        $PSCmdlet.ShouldProcess($Entry.Key, 'Delete empty key (absent before the first install)')) {
        Remove-Item -LiteralPath $Entry.Key -Force -Confirm:$false
        Write-Step "deleted the empty key $($Entry.Key) (absent before the first install)."
    }
}

# Checked first: a bad record stops the script before the service or any file is touched.
$policyRecord = if ($RemoveStoragePolicy) { Read-PolicyRecord } else { $null }

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

# The policy before the data folder: the record lives there.
if ($RemoveStoragePolicy) {
    if ($null -ne $policyRecord) {
        foreach ($entry in $policyRecord) { Restore-PolicyValue $entry }
    } else {
        Write-Warning "No record of the policy values from before the first install ($policyRecordPath): deleting Deny_All as older versions did; NoDriveTypeAutoRun is left as it is."
        $value = Get-ItemProperty -LiteralPath $StoragePolicyKey -Name 'Deny_All' -ErrorAction SilentlyContinue
        if ($null -ne $value -and $PSCmdlet.ShouldProcess("$StoragePolicyKey\Deny_All", 'Delete value: users regain direct access to USB storage')) {
            Remove-ItemProperty -LiteralPath $StoragePolicyKey -Name 'Deny_All' -Force -Confirm:$false
            Write-Step "deleted $StoragePolicyKey\Deny_All."
        }
    }
    Write-Warning 'The removable-storage policy takes effect only after a restart: restart this HMI.'
} else {
    Write-Warning 'Kept the removable-storage deny policy: USB storage stays closed to users on this HMI. Run again with -RemoveStoragePolicy to put back the values from before the install.'
    if ($RemoveData -and (Test-Path -LiteralPath $policyRecordPath)) {
        # The record goes with the data folder: show it, so the values are not lost.
        Write-Warning "The record of the policy values before the first install is deleted with ${DataDir}: $((Get-Content -LiteralPath $policyRecordPath -Raw) -replace '\s+', ' ')"
    }
}

if ($RemoveData) {
    if ((Test-Path -LiteralPath $DataDir) -and $PSCmdlet.ShouldProcess($DataDir, 'Delete configuration, trust store, decision log and policy record (export the log first)')) {
        Remove-Item -LiteralPath $DataDir -Recurse -Force -Confirm:$false
    }
} elseif (Test-Path -LiteralPath $DataDir) {
    Write-Warning "Kept $DataDir (trust store and decision log). Export the log for review before removing it with -RemoveData."
}
