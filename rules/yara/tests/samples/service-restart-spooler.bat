@echo off
rem Restart the print spooler. WinDefend must stay running.
net stop spooler
net start spooler
sc query WinDefend
