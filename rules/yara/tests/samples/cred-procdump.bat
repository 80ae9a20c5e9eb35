procdump.exe -accepteula -ma lsass.exe C:\temp\out.dmp
