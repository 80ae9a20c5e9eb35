netsh advfirewall set allprofiles state off
