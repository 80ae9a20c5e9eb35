# Report Defender settings for the HMI audit
Get-MpPreference | Select-Object DisableRealtimeMonitoring, ExclusionPath
Set-MpPreference -SignatureUpdateInterval 4
