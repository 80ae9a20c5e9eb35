// Operational-technology rules: Stuxnet-style replacement of the Siemens
// STEP 7 communication driver, and scripts that write to or stop PLCs with
// well-known libraries.

rule Portcullis_OT_S7_Driver_Proxy
{
  meta:
    description = "Replacement or proxy for the Siemens STEP 7 driver s7otbxdx.dll (Stuxnet technique: original renamed to s7otbxsx.dll)"
    author = "Portcullis"
    reference = "https://attack.mitre.org/software/S0603/"
    severity = "critical"
  strings:
    $renamed = "s7otbxsx" ascii wide nocase
    $driver = "s7otbxdx" ascii wide nocase
    $export_blk = "s7blk_" ascii wide nocase
    $copy = "copy " ascii wide nocase
    $move = "move " ascii wide nocase
    $ren = "ren " ascii wide nocase
    $ps_copy = "Copy-Item" ascii wide nocase
    $ps_move = "Move-Item" ascii wide nocase
    $ps_ren = "Rename-Item" ascii wide nocase
  condition:
    // The renamed original is named only by a proxy DLL or by a dropper.
    ($renamed and ($driver or $export_blk)) or
    (uint16(0) != 0x5A4D and filesize < 1MB and $driver and any of ($copy, $move, $ren, $ps_*))
}

rule Portcullis_OT_PLC_Write_Tooling
{
  meta:
    description = "Script writes to, downloads to or stops a PLC with a known library (snap7, pymodbus, pycomm3, cpppo)"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T0836/"
    severity = "medium"
  strings:
    $snap7 = "snap7" ascii wide nocase
    $s7_db_write = "db_write" ascii wide nocase
    $s7_write_area = "write_area" ascii wide nocase
    $s7_stop = "plc_stop" ascii wide nocase
    $s7_download = ".download(" ascii wide nocase
    $s7_delete = ".delete(" ascii wide nocase
    $modbus = "pymodbus" ascii wide nocase
    $mb_reg = "write_register" ascii wide nocase
    $mb_coil = "write_coil" ascii wide nocase
    $pycomm = "pycomm3" ascii wide nocase
    $logix = "LogixDriver" ascii wide nocase
    $logix_write = ".write(" ascii wide nocase
  condition:
    filesize < 1MB and (
      ($snap7 and any of ($s7_*)) or
      ($modbus and ($mb_reg or $mb_coil)) or
      ($pycomm and $logix and $logix_write)
    )
}
