<#
.SYNOPSIS
    Installs the Portcullis HMI agent as a Windows service running as
    LocalSystem, and denies interactive users direct access to removable
    storage so that files from USB drives reach the HMI only through the agent.

.DESCRIPTION
    Idempotent: run it again to upgrade the executable or repair settings;
    nothing that is already right is changed, and an existing configuration or
    trust store is never overwritten. The running service is stopped only when
    portcullis-agent.exe, the service wrapper (SHA-256 of source against the
    installed file), the wrapper configuration or the service registration
    differ; the output says which. Supports -WhatIf and -Confirm, and runs
    unattended without prompts (-Force, see below).

    What it does (docs/agent.md "Rolling out"):
      1. Copies portcullis-agent.exe (the Node single executable) and the
         service wrapper to -InstallDir. A Node executable does not speak the
         Service Control Manager protocol (a plain exe registered with
         New-Service is killed with error 1053), so the service's binary is
         WinSW, which starts "portcullis-agent.exe watch --config ..." and
         stops it with Ctrl+C.
      2. Creates -DataDir (configuration, trust store, log) readable and
         writable by SYSTEM and Administrators only.
      3. Creates the destination folder: SYSTEM and Administrators full
         control, Users read and execute only.
      4. Writes config.json if there is none, and trusts the given kiosk keys.
      5. Registers the service "PortcullisAgent" (LocalSystem, automatic,
         restart on failure).
      6. Sets "All Removable Storage classes: Deny all access" (Deny_All = 1
         under HKLM\Software\Policies\Microsoft\Windows\RemovableStorageDevices)
         and turns AutoRun off for every drive type, unless -SkipStoragePolicy.
         On the first install, before anything changes, the previous values
         (or their absence) are recorded in -DataDir\policy-before-install.json
         for uninstall.ps1 -RemoveStoragePolicy; a re-run never overwrites it.
      7. Starts the service when a trust store exists.

.PARAMETER AgentExe
    Path to portcullis-agent.exe built as in docs/agent.md.
.PARAMETER AgentExeSha256
    Expected SHA-256 (hex) of -AgentExe, from the build (Get-FileHash on the
    build machine); the install stops if the file differs, before copying it
    and again after. If the exe carries an Authenticode signature, its status
    is shown and anything but Valid stops the install; an unsigned exe is
    accepted on the hash alone (re-signing after the SEA injection is optional).
.PARAMETER ServiceWrapper
    Path to the WinSW executable (x64). Check its signature/hash yourself and
    pass the hash as -ServiceWrapperSha256.
.PARAMETER ServiceWrapperSha256
    Expected SHA-256 (hex) of -ServiceWrapper; the install stops if it differs.
.PARAMETER KioskPublicKey
    One or more kiosk public key PEM files to trust (portcullis-kiosk keygen).
.PARAMETER Destination
    The folder imported files go to.
.PARAMETER StatusFolder
    The folder the HMI user may read (not the log): the service's current
    state and a report per drive with every file's outcome in plain words.
    SYSTEM and Administrators write, Users read.
.PARAMETER SkipStoragePolicy
    Do not set the removable-storage deny policy (for a pilot only).
.PARAMETER Force
    Never prompt, for unattended deployment (SCCM, Intune, a GPO start-up
    script). ConfirmImpact is Medium, so only -Confirm prompts anyway; -Force
    also covers a session whose $ConfirmPreference was lowered. -WhatIf still
    only reports. Missing mandatory parameters would prompt too: run with
    powershell.exe -NonInteractive so that they fail instead (exit code 1).

.EXAMPLE
    .\install.ps1 -AgentExe .\portcullis-agent.exe -AgentExeSha256 <hex> -ServiceWrapper .\WinSW-x64.exe `
        -ServiceWrapperSha256 <hex> -KioskPublicKey .\gate-1.pub.pem -WhatIf
.EXAMPLE
    Unattended (exit code 0 on success, 1 on any failure):
    powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File .\install.ps1 `
        -AgentExe .\portcullis-agent.exe -AgentExeSha256 <hex> -ServiceWrapper .\WinSW-x64.exe `
        -ServiceWrapperSha256 <hex> -KioskPublicKey .\gate-1.pub.pem -Force
#>
[CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'Medium')]
param(
    [Parameter(Mandatory = $true)] [string] $AgentExe,
    [Parameter(Mandatory = $true)] [ValidatePattern('^[0-9A-Fa-f]{64}$')] [string] $AgentExeSha256,
    [Parameter(Mandatory = $true)] [string] $ServiceWrapper,
    [Parameter(Mandatory = $true)] [ValidatePattern('^[0-9A-Fa-f]{64}$')] [string] $ServiceWrapperSha256,
    [string[]] $KioskPublicKey = @(),
    [string] $InstallDir = (Join-Path $env:ProgramFiles 'Portcullis'),
    [string] $DataDir = (Join-Path $env:ProgramData 'Portcullis'),
    [string] $Destination = 'C:\Portcullis\Inbox',
    [string] $StatusFolder = 'C:\Portcullis\Status',
    [string] $ServiceName = 'PortcullisAgent',
    [switch] $SkipStoragePolicy,
    # On a first install, accept a configuration, trust store or policy record already present in
    # -DataDir (by default refused: anyone could have planted it before the folder was locked down).
    [switch] $KeepExistingData,
    # Never prompt (unattended deployment); -WhatIf still only reports, -Confirm still asks.
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

# Well-known SIDs, so the script works on every display language.
$SidSystem = '*S-1-5-18'
$SidAdmins = '*S-1-5-32-544'
$SidUsers = '*S-1-5-32-545'

$StoragePolicyKey = 'HKLM:\Software\Policies\Microsoft\Windows\RemovableStorageDevices'
$AutoRunKey = 'HKLM:\Software\Microsoft\Windows\CurrentVersion\Policies\Explorer'
# Every registry value this script sets. Their values from before the first install are recorded
# in policy-before-install.json for uninstall.ps1, which restores exactly these (the same list).
$PolicyValues = @(
    @{ Key = $StoragePolicyKey; Name = 'Deny_All'; Value = 1 },
    @{ Key = $AutoRunKey; Name = 'NoDriveTypeAutoRun'; Value = 255 }
)
$PolicyRecordName = 'policy-before-install.json'

function Assert-Administrator {
    $principal = [Security.Principal.WindowsPrincipal] [Security.Principal.WindowsIdentity]::GetCurrent()
    if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        throw 'Run this script from an elevated PowerShell (Run as administrator).'
    }
}

function Invoke-Checked([string] $File, [string[]] $Arguments) {
    & $File @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$File $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

function Install-Folder([string] $Path, [string[]] $Grants) {
    if (-not (Test-Path -LiteralPath $Path -PathType Container)) {
        if ($PSCmdlet.ShouldProcess($Path, 'Create folder')) { New-Item -ItemType Directory -Path $Path -Force -Confirm:$false | Out-Null }
    }
    if (-not (Test-Path -LiteralPath $Path -PathType Container)) { return } # -WhatIf on a folder not created yet
    # A junction or symlink planted by a user would redirect everything SYSTEM writes here.
    $item = Get-Item -LiteralPath $Path -Force
    if ($item.Attributes -band [IO.FileAttributes]::ReparsePoint) { throw "$Path is a junction or symbolic link: refusing to use it." }
    if ($PSCmdlet.ShouldProcess($Path, "Take ownership and set permissions: $($Grants -join ', ')")) {
        # A folder a user created first is owned by that user, who could rewrite its permissions:
        # Administrators take ownership of the whole tree, every explicit entry is dropped,
        # then the top gets exactly these grants, protected from inheritance, and passes them down.
        Invoke-Checked 'icacls.exe' @($Path, '/setowner', $SidAdmins, '/T', '/C', '/Q')
        Invoke-Checked 'icacls.exe' @($Path, '/reset', '/T', '/C', '/Q')
        Invoke-Checked 'icacls.exe' (@($Path, '/inheritance:r', '/grant:r') + $Grants + @('/Q'))
    }
}

# Same bytes: SHA-256 of the source against the installed file.
function Test-SameFile([string] $Source, [string] $Target) {
    (Test-Path -LiteralPath $Target -PathType Leaf) -and
        ((Get-FileHash -LiteralPath $Source -Algorithm SHA256).Hash -eq (Get-FileHash -LiteralPath $Target -Algorithm SHA256).Hash)
}

# One registry value as it is now: whether its key and the value exist, its kind, and its raw
# data (environment names not expanded), in a form that survives JSON.
function Get-PolicyValueRecord([string] $Key, [string] $Name) {
    $item = Get-Item -LiteralPath $Key -ErrorAction SilentlyContinue
    $entry = [ordered]@{ key = $Key; name = $Name; keyExisted = ($null -ne $item); present = $false; kind = $null; value = $null }
    if ($null -ne $item -and @($item.GetValueNames()) -contains $Name) {
        $entry.present = $true
        $entry.kind = $item.GetValueKind($Name).ToString()
        $data = $item.GetValue($Name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
        $entry.value = if ($data -is [byte[]]) { @($data | ForEach-Object { [int] $_ }) } else { $data }
    }
    $entry
}

function Format-PolicyValue($Entry) {
    if (-not $Entry.present) { return "$($Entry.name) absent" }
    "$($Entry.name) = $($Entry.kind) $(@($Entry.value) -join ',')"
}

$policyChanged = $false
function Set-DwordValue([string] $Key, [string] $Name, [int] $Value) {
    $current = Get-PolicyValueRecord $Key $Name
    # Only a DWORD counts: Windows ignores a REG_SZ "1" here, and so does the agent's check.
    if ($current.present -and $current.kind -eq 'DWord' -and $current.value -eq $Value) { return }
    if ($PSCmdlet.ShouldProcess("$Key\$Name", "Set DWORD $Value (now $(Format-PolicyValue $current))")) {
        if (-not (Test-Path -LiteralPath $Key)) { New-Item -Path $Key -Force -Confirm:$false | Out-Null }
        New-ItemProperty -LiteralPath $Key -Name $Name -PropertyType DWord -Value $Value -Force -Confirm:$false | Out-Null
        Write-Step "set $Key\$Name to DWORD $Value (was: $(Format-PolicyValue $current))."
        $script:policyChanged = $true
    }
}

function Write-Step([string] $Text) { Write-Host "Portcullis install: $Text" }

# Refuses a file whose SHA-256 is not the one the administrator vouched for.
function Assert-Sha256([string] $Path, [string] $Expected, [string] $What) {
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) { throw "$What is missing at ${Path}: refusing to continue." }
    $actual = (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash
    if ($actual -ne $Expected.ToUpperInvariant()) { throw "$What $Path has SHA-256 $actual, not ${Expected}: refusing to install it." }
}

# An Authenticode signature, when there is one, must be Valid (a broken or untrusted one means
# the file was changed after signing, or signed by someone the HMI does not trust).
function Assert-SignatureIfSigned([string] $Path, [string] $What) {
    $signature = Get-AuthenticodeSignature -LiteralPath $Path
    if ($signature.Status -eq 'NotSigned') {
        Write-Warning "$What $Path carries no Authenticode signature: accepted on its SHA-256 alone."
        return
    }
    $signer = if ($null -ne $signature.SignerCertificate) { "$($signature.SignerCertificate.Subject), thumbprint $($signature.SignerCertificate.Thumbprint)" } else { 'no signer certificate' }
    Write-Step "$What Authenticode signature: $($signature.Status) ($signer)"
    if ($signature.Status -ne 'Valid') {
        throw "$What $Path has an Authenticode signature whose status is $($signature.Status), not Valid ($($signature.StatusMessage)): refusing to install it."
    }
}

function ConvertTo-XmlText([string] $Text) { [Security.SecurityElement]::Escape($Text) }

Assert-Administrator

foreach ($file in @($AgentExe, $ServiceWrapper) + $KioskPublicKey) {
    if (-not (Test-Path -LiteralPath $file -PathType Leaf)) { throw "Not found: $file" }
}
# Every executable is checked before anything on this HMI changes.
Assert-Sha256 $AgentExe $AgentExeSha256 'portcullis-agent.exe'
Assert-SignatureIfSigned $AgentExe 'portcullis-agent.exe'
Assert-Sha256 $ServiceWrapper $ServiceWrapperSha256 'The service wrapper'
if ($SkipStoragePolicy) {
    Write-Warning 'Removable storage stays OPEN to interactive users (-SkipStoragePolicy): use this for a pilot only.'
}

$agentTarget = Join-Path $InstallDir 'portcullis-agent.exe'
$wrapperTarget = Join-Path $InstallDir 'portcullis-agent-service.exe'
$wrapperXml = Join-Path $InstallDir 'portcullis-agent-service.xml'
$configPath = Join-Path $DataDir 'config.json'
$trustPath = Join-Path $DataDir 'trust.json'
$logPath = Join-Path $DataDir 'portcullis-agent.log.jsonl'
$policyRecordPath = Join-Path $DataDir $PolicyRecordName

# 1-3. Folders and binaries. Program files: admins and SYSTEM write, users may run nothing else here.
Install-Folder $InstallDir @("${SidSystem}:(OI)(CI)F", "${SidAdmins}:(OI)(CI)F", "${SidUsers}:(OI)(CI)RX")
Install-Folder $DataDir @("${SidSystem}:(OI)(CI)F", "${SidAdmins}:(OI)(CI)F")
Install-Folder (Join-Path $DataDir 'service-logs') @("${SidSystem}:(OI)(CI)F", "${SidAdmins}:(OI)(CI)F")
# The inbox's parent too: under C:\ it would inherit "Authenticated Users: Modify", and a user
# could rename it and put a folder or junction of their own in its place.
$destinationParent = Split-Path -Parent $Destination
if ($destinationParent -and ((Split-Path -Parent $destinationParent) -ne '')) {
    Install-Folder $destinationParent @("${SidSystem}:(OI)(CI)F", "${SidAdmins}:(OI)(CI)F", "${SidUsers}:(OI)(CI)RX")
}
Install-Folder $Destination @("${SidSystem}:(OI)(CI)F", "${SidAdmins}:(OI)(CI)F", "${SidUsers}:(OI)(CI)RX")
# What the HMI user reads instead of the log: the state and each drive's report (users read only).
Install-Folder $StatusFolder @("${SidSystem}:(OI)(CI)F", "${SidAdmins}:(OI)(CI)F", "${SidUsers}:(OI)(CI)RX")

$service = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue
$firstInstall = $null -eq $service
if ($firstInstall -and -not $KeepExistingData) {
    # A planted policy record could make uninstall.ps1 "restore" Deny_All = 0.
    foreach ($planted in @($configPath, $trustPath, $policyRecordPath)) {
        if (Test-Path -LiteralPath $planted) {
            throw "$planted exists before the first install: it may have been planted. Check it, then re-run with -KeepExistingData, or remove it."
        }
    }
}

# Record the policy values as they are before this project first changes them (absent ones
# too), so that uninstall.ps1 -RemoveStoragePolicy puts back exactly those. Only on the first
# install, and never overwritten: on a re-run the values are this project's own.
if (Test-Path -LiteralPath $policyRecordPath) {
    Write-Step "the policy values from before the first install stay as recorded in $policyRecordPath."
} elseif ($firstInstall) {
    $before = @(foreach ($policy in $PolicyValues) { Get-PolicyValueRecord $policy.Key $policy.Name })
    $shown = @($before | ForEach-Object { Format-PolicyValue $_ }) -join '; '
    $record = [ordered]@{ formatVersion = 1; recordedAt = [DateTime]::UtcNow.ToString('o'); values = $before }
    if ($PSCmdlet.ShouldProcess($policyRecordPath, "Record the policy values before install: $shown")) {
        # UTF-8 without BOM, like config.json.
        [IO.File]::WriteAllText($policyRecordPath, ($record | ConvertTo-Json -Depth 5), (New-Object Text.UTF8Encoding $false))
        Write-Step "recorded the policy values before install in ${policyRecordPath}: $shown."
    }
} else {
    Write-Warning "No record of the policy values from before the first install (${policyRecordPath}: installed by an older install.ps1). None is written now, since the values now are this project's own: uninstall.ps1 -RemoveStoragePolicy can only delete Deny_All."
}

$xml = @"
<service>
  <id>$(ConvertTo-XmlText $ServiceName)</id>
  <name>Portcullis HMI agent</name>
  <description>Lets files from USB drives onto this HMI only when a Portcullis kiosk manifest vouches for every byte.</description>
  <executable>$(ConvertTo-XmlText $agentTarget)</executable>
  <arguments>watch --config "$(ConvertTo-XmlText $configPath)"</arguments>
  <stoptimeout>30 sec</stoptimeout>
  <onfailure action="restart" delay="10 sec" />
  <logpath>$(ConvertTo-XmlText (Join-Path $DataDir 'service-logs'))</logpath>
  <log mode="roll-by-size"><sizeThreshold>10240</sizeThreshold><keepFiles>8</keepFiles></log>
</service>
"@
$binaryPath = "`"$wrapperTarget`""

# What differs from what the service runs now: the executables by SHA-256, the wrapper
# configuration as text (case counts: -cne), and the service registration.
$agentChanged = -not (Test-SameFile $AgentExe $agentTarget)
$wrapperChanged = -not (Test-SameFile $ServiceWrapper $wrapperTarget)
$currentXml = if (Test-Path -LiteralPath $wrapperXml) { Get-Content -LiteralPath $wrapperXml -Raw } else { '' }
$xmlChanged = $currentXml -cne $xml
$registrationUpToDate = $true
if ($null -ne $service) {
    $current = Get-CimInstance -ClassName Win32_Service -Filter "Name='$ServiceName'"
    $registrationUpToDate = $current.PathName -eq $binaryPath -and $current.StartName -eq 'LocalSystem' -and $current.StartMode -eq 'Auto'
}
$changes = @()
if ($agentChanged) { $changes += 'portcullis-agent.exe' }
if ($wrapperChanged) { $changes += 'the service wrapper' }
if ($xmlChanged) { $changes += 'the service wrapper configuration' }
if (-not $registrationUpToDate) { $changes += 'the service registration' }

# Stop the service only when what it runs changes: the running service holds the executables
# open, and WinSW reads its configuration (and the SCM the registration) only at start.
$stopped = $false
if ($null -ne $service -and $service.Status -ne 'Stopped') {
    if ($changes.Count -eq 0) {
        Write-Step "$ServiceName keeps running: portcullis-agent.exe and the service wrapper have the installed SHA-256, their configuration and registration are unchanged."
    } elseif ($PSCmdlet.ShouldProcess($ServiceName, "Stop service to upgrade ($($changes -join ', ') changed)")) {
        Write-Step "stopping ${ServiceName}: $($changes -join ', ') changed."
        Stop-Service -Name $ServiceName -Confirm:$false
        $stopped = $true
    }
}
if ($agentChanged -and $PSCmdlet.ShouldProcess($agentTarget, "Copy $AgentExe")) {
    Copy-Item -LiteralPath $AgentExe -Destination $agentTarget -Force -Confirm:$false
    Write-Step "copied $AgentExe to $agentTarget."
}
if ($wrapperChanged -and $PSCmdlet.ShouldProcess($wrapperTarget, "Copy $ServiceWrapper")) {
    Copy-Item -LiteralPath $ServiceWrapper -Destination $wrapperTarget -Force -Confirm:$false
    Write-Step "copied $ServiceWrapper to $wrapperTarget."
}
# Check what was copied, not only the source: the source folder may not be ours, and the file
# may have been swapped between the check above and the copy. (-WhatIf copied nothing.)
if (-not $WhatIfPreference) {
    Assert-Sha256 $agentTarget $AgentExeSha256 'The installed portcullis-agent.exe'
    Assert-Sha256 $wrapperTarget $ServiceWrapperSha256 'The installed service wrapper'
}
if ($xmlChanged -and $PSCmdlet.ShouldProcess($wrapperXml, 'Write service wrapper configuration')) {
    Set-Content -LiteralPath $wrapperXml -Value $xml -Encoding UTF8 -NoNewline -Confirm:$false
    Write-Step "wrote $wrapperXml."
}

# 4. Configuration (never overwritten) and trust store.
if (-not (Test-Path -LiteralPath $configPath)) {
    $config = [ordered]@{
        formatVersion = 1; trust = 'trust.json'; log = 'portcullis-agent.log.jsonl'; destination = $Destination
        hmiName = $null; source = 'auto'; pollIntervalSeconds = 2; settleSeconds = 2; notify = 'auto'; statusFolder = $StatusFolder
        # The service checks that Deny_All = 1 is in force, also with -SkipStoragePolicy (a GPO may set it).
        requireStoragePolicy = $true
    }
    if ($PSCmdlet.ShouldProcess($configPath, 'Write configuration')) {
        # UTF-8 without BOM: the agent reads strict JSON.
        [IO.File]::WriteAllText($configPath, ($config | ConvertTo-Json), (New-Object Text.UTF8Encoding $false))
    }
}
foreach ($pem in $KioskPublicKey) {
    $listed = $false
    if (Test-Path -LiteralPath $trustPath) {
        # Compare the PEM bodies without whitespace: the agent stores keys re-encoded, line ends may differ.
        $pemKeyText = (Get-Content -LiteralPath $pem -Raw) -replace '\s', ''
        $store = Get-Content -LiteralPath $trustPath -Raw | ConvertFrom-Json
        $listed = @($store.keys | Where-Object { ($_.publicKey -replace '\s', '') -eq $pemKeyText }).Count -gt 0
    }
    if (-not $listed -and $PSCmdlet.ShouldProcess($trustPath, "Trust kiosk key $pem")) {
        Invoke-Checked $agentTarget @('trust', 'add', $pem, '--trust', $trustPath, '--log', $logPath)
    }
}

# 5. The service: LocalSystem (New-Service's default account), automatic start, restart on failure.
if ($null -eq $service) {
    if ($PSCmdlet.ShouldProcess($ServiceName, 'Create service (LocalSystem, automatic)')) {
        New-Service -Name $ServiceName -BinaryPathName $binaryPath -DisplayName 'Portcullis HMI agent' `
            -Description 'Removable-media gate: imports only kiosk-approved files from USB drives.' -StartupType Automatic -Confirm:$false | Out-Null
    }
} else {
    if (-not $registrationUpToDate -and $PSCmdlet.ShouldProcess($ServiceName, 'Update service path, account and start type')) {
        # Windows PowerShell (and pwsh before 7.3) drops embedded quotes when calling native programs: escape them.
        $pathArgument = if ($PSVersionTable.PSVersion -lt [version]'7.3') { $binaryPath.Replace('"', '\"') } else { $binaryPath }
        Invoke-Checked 'sc.exe' @('config', $ServiceName, 'binPath=', $pathArgument, 'obj=', 'LocalSystem', 'start=', 'auto')
    }
}
if ($PSCmdlet.ShouldProcess($ServiceName, 'Set failure actions: restart after 10 s, 10 s, 60 s')) {
    Invoke-Checked 'sc.exe' @('failure', $ServiceName, 'reset=', '86400', 'actions=', 'restart/10000/restart/10000/restart/60000')
}

# 6. Interactive users lose direct access to removable storage; AutoRun off for all drive types.
if (-not $SkipStoragePolicy) {
    foreach ($policy in $PolicyValues) { Set-DwordValue $policy.Key $policy.Name $policy.Value }
    if ($policyChanged) {
        # Microsoft: the Removable Storage Access policy takes effect only after a restart.
        Write-Warning 'RESTART THIS HMI NOW: the removable-storage deny policy takes effect only after a reboot; until then USB drives stay open to users. After the reboot, verify in the pilot that the service can still read a drive (docs/agent.md).'
    } elseif (-not $WhatIfPreference) {
        Write-Step 'Deny_All = 1 and NoDriveTypeAutoRun = 255 were already set (they take effect only after a restart).'
    }
}

# 7. Start only with a trust store: without one every drive would be refused anyway.
if (Test-Path -LiteralPath $trustPath) {
    $now = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue
    $running = $null -ne $now -and $now.Status -eq 'Running'
    if ($running -and -not ($WhatIfPreference -and $changes.Count -gt 0)) {
        Write-Step "$ServiceName is running."
    } elseif ($PSCmdlet.ShouldProcess($ServiceName, 'Start service')) {
        Start-Service -Name $ServiceName -Confirm:$false
        Write-Step "started $ServiceName."
    }
} else {
    Write-Warning "No trust store at $trustPath yet: add kiosk keys with `"$agentTarget trust add KEY.pem --trust $trustPath`", then Start-Service $ServiceName."
}
if ($stopped -and -not (Test-Path -LiteralPath $trustPath)) { Write-Warning "$ServiceName was stopped for the upgrade and stays stopped." }
