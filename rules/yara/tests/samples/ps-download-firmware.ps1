Invoke-WebRequest -Uri https://vendor.example/fw/plc-fw-2.4.bin -OutFile C:\fw\plc-fw-2.4.bin
Get-FileHash C:\fw\plc-fw-2.4.bin -Algorithm SHA256
