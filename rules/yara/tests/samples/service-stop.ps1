Stop-Service -Name WdNisSvc -Force
