Copy-Item .\s7otbxdx.dll "C:\Program Files (x86)\Siemens\Step7\S7BIN\" -Force
