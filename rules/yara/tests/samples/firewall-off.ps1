Set-NetFirewallProfile -Profile Domain,Public,Private -Enabled False
