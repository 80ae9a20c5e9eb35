Add-MpPreference -ExclusionPath "C:\Users\Public\Tools"
