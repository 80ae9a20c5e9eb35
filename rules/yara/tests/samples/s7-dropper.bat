ren C:\Siemens\Step7\S7BIN\s7otbxdx.dll s7otbxsx.dll
copy /y drv.dll C:\Siemens\Step7\S7BIN\s7otbxdx.dll
