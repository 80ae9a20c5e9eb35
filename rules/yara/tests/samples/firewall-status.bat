netsh advfirewall show allprofiles state
powershell -Command "Set-NetFirewallProfile -Profile Domain -Enabled True"
