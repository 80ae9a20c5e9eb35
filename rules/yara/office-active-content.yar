// Active content in Office documents that runs, fetches or drops something
// when the document is opened, without a macro: OLE Package objects (an
// embedded file the reader starts with a double-click), DDE fields (Word runs
// a command to "update" the field), and relationships to an external template
// or OLE object (Word fetches them when the document opens). clamd runs these
// on every part the kiosk unpacks from a document (the XML parts, the .rels,
// word/embeddings/oleObject1.bin) and on legacy .doc/.xls/.rtf files whole.

// An OLE Package: the embedded object's "\x01Ole10Native" stream, named in
// the compound file's directory in UTF-16LE ([MS-CFB] 2.6.1; [MS-OLEDS] 2.3.6).
// Word stores it in word/embeddings/oleObject*.bin (OOXML) or in the
// ObjectPool storage of a .doc. Directory names are matched case-blind by
// OLE32, so the string is too.
rule Portcullis_Office_OLE_Package_Object
{
  meta:
    description = "OLE2 compound file holding an OLE Package object (Ole10Native): an embedded file the reader opens with a double-click"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1204/002/"
    severity = "high"
  strings:
    $cfb = { D0 CF 11 E0 A1 B1 1A E1 }
    $native = "\x01Ole10Native" wide nocase
  condition:
    $cfb at 0 and $native
}

// The same Package object in an RTF file: "{\object\objemb{\*\objclass
// Package}..{\*\objdata <hex>}}", whose objdata is an OLE1 EmbeddedObject
// ([MS-OLEDS] 2.2.5) naming its class "Package" (08000000 "Package\0"), or a
// compound file holding an Ole10Native stream, in hex of either letter case.
// Not caught: hex split by white space (Word skips it) without an objclass.
rule Portcullis_RTF_Package_Object
{
  meta:
    description = "RTF document embedding an OLE Package object (objclass Package or Package objdata): an embedded file the reader opens with a double-click"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1204/002/"
    severity = "high"
  strings:
    $class = "\\objclass Package" nocase
    $ole1_class = "080000005061636b61676500" nocase
    $native_name = "01004f006c006500310030004e0061007400690076006500" nocase
  condition:
    uint32(0) == 0x74725C7B and any of them
}

// A Word field that runs a program through DDE ("DDEAUTO c:\\windows\\system32\\cmd.exe
// ...", [MS-DOCX] / ECMA-376 17.16.5.14): in a complex field's instrText or a
// simple field's w:instr attribute. Field names are not case-sensitive.
rule Portcullis_Office_DDE_Field
{
  meta:
    description = "Word field code DDE or DDEAUTO: Word starts the named program to update the field"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1559/002/"
    severity = "high"
  strings:
    $instr_text = /instr[Tt]ext[^>]{0,200}>\s{0,40}[Dd][Dd][Ee]([Aa][Uu][Tt][Oo])?[\s"]/
    $instr_attr = /instr\s{0,5}=\s{0,5}["']\s{0,40}[Dd][Dd][Ee]([Aa][Uu][Tt][Oo])?[\s"]/
  condition:
    any of them
}

// A relationship (OPC, ECMA-376 part 2, 9.3) to an attached template or an
// OLE object outside the package: Word fetches the template (macros and all)
// or the linked object when the document opens (remote template injection,
// CVE-2017-0199). The Type and TargetMode attributes come in either order.
rule Portcullis_Office_External_Template_Or_OLE_Link
{
  meta:
    description = "OOXML relationship to an external attached template or OLE object (TargetMode External): fetched when the document opens"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1221/"
    severity = "high"
  strings:
    $template_then_mode = /[Rr]elationships\/[Aa]ttached[Tt]emplate["'][^>]{0,500}[Tt]arget[Mm]ode\s{0,5}=\s{0,5}["'][Ee]xternal/
    $mode_then_template = /[Tt]arget[Mm]ode\s{0,5}=\s{0,5}["'][Ee]xternal["'][^>]{0,500}[Rr]elationships\/[Aa]ttached[Tt]emplate["']/
    $object_then_mode = /[Rr]elationships\/[Oo]le[Oo]bject["'][^>]{0,500}[Tt]arget[Mm]ode\s{0,5}=\s{0,5}["'][Ee]xternal/
    $mode_then_object = /[Tt]arget[Mm]ode\s{0,5}=\s{0,5}["'][Ee]xternal["'][^>]{0,500}[Rr]elationships\/[Oo]le[Oo]bject["']/
  condition:
    any of them
}

// A relationship to an external frame (a web settings frameset, ECMA-376
// 17.15.2) or an external subdocument (17.17.1.1): Word fetches the target
// when the document opens, as it does an external template.
rule Portcullis_Office_External_Frame_Or_Subdocument
{
  meta:
    description = "OOXML relationship to an external frame or subdocument (TargetMode External): fetched when the document opens"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1221/"
    severity = "high"
  strings:
    $kind_then_mode = /[Rr]elationships\/([Ff]rame|[Ss]ub[Dd]ocument)["'][^>]{0,500}[Tt]arget[Mm]ode\s{0,5}=\s{0,5}["'][Ee]xternal/
    $mode_then_kind = /[Tt]arget[Mm]ode\s{0,5}=\s{0,5}["'][Ee]xternal["'][^>]{0,500}[Rr]elationships\/([Ff]rame|[Ss]ub[Dd]ocument)["']/
  condition:
    any of them
}

// Excel DDE that starts a program: an external link whose DDE service is a
// command interpreter or a system binary (ECMA-376 18.14.4 ddeLink, in
// xl/externalLinks/externalLinkN.xml), or a formula in DDE form
// service|'topic'!item naming one (in a sheet's <f>, or a CSV cell starting
// with = + - or @: service|'topic'!item, written with no blank before the
// quote as Excel writes it). DDE links to other services pass: plants link
// cells to RSLinx, KEPServerEX and other OPC/DDE servers this way.
rule Portcullis_Excel_DDE_Command
{
  meta:
    description = "Excel DDE link or formula whose service is a command interpreter or system binary (cmd, powershell, mshta ...): Excel starts it"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1559/002/"
    severity = "high"
  strings:
    $link = /<ddeLink[^>]{0,500}ddeService\s{0,5}=\s{0,5}["']\s{0,10}([Cc][Mm][Dd]|[Cc][Oo][Mm][Mm][Aa][Nn][Dd]|[Pp][Oo][Ww][Ee][Rr][Ss][Hh][Ee][Ll][Ll]|[Pp][Ww][Ss][Hh]|[Mm][Ss][Hh][Tt][Aa]|[Rr][Uu][Nn][Dd][Ll][Ll]32|[Rr][Ee][Gg][Ss][Vv][Rr]32|[Ww][Ss][Cc][Rr][Ii][Pp][Tt]|[Cc][Ss][Cc][Rr][Ii][Pp][Tt]|[Mm][Ss][Ii][Ee][Xx][Ee][Cc]|[Cc][Ee][Rr][Tt][Uu][Tt][Ii][Ll]|[Bb][Ii][Tt][Ss][Aa][Dd][Mm][Ii][Nn]|[Mm][Ss][Ee][Xx][Cc][Ee][Ll]|[Ww][Mm][Ii][Cc]|[Ss][Cc][Hh][Tt][Aa][Ss][Kk][Ss])(\.[Ee][Xx][Ee])?["']/
    $formula_cmd = "cmd|'" nocase
    $formula_cmd_apos = "cmd|&apos;" nocase
    $formula_cmd_exe = "cmd.exe|'" nocase
    $formula_cmd_exe_apos = "cmd.exe|&apos;" nocase
    $formula_powershell = "powershell|'" nocase
    $formula_powershell_apos = "powershell|&apos;" nocase
    $formula_powershell_exe = "powershell.exe|'" nocase
    $formula_powershell_exe_apos = "powershell.exe|&apos;" nocase
    $formula_pwsh = "pwsh|'" nocase
    $formula_pwsh_apos = "pwsh|&apos;" nocase
    $formula_mshta = "mshta|'" nocase
    $formula_mshta_apos = "mshta|&apos;" nocase
    $formula_rundll32 = "rundll32|'" nocase
    $formula_rundll32_apos = "rundll32|&apos;" nocase
    $formula_regsvr32 = "regsvr32|'" nocase
    $formula_regsvr32_apos = "regsvr32|&apos;" nocase
    $formula_wscript = "wscript|'" nocase
    $formula_wscript_apos = "wscript|&apos;" nocase
    $formula_cscript = "cscript|'" nocase
    $formula_cscript_apos = "cscript|&apos;" nocase
    $formula_msiexec = "msiexec|'" nocase
    $formula_msiexec_apos = "msiexec|&apos;" nocase
    $formula_certutil = "certutil|'" nocase
    $formula_certutil_apos = "certutil|&apos;" nocase
    $formula_msexcel = "msexcel|'" nocase
    $formula_msexcel_apos = "msexcel|&apos;" nocase
  condition:
    any of them
}

// An RTF document attaching a template on a share or a web server
// ({\*\template \\\\host\\share\\x.dotm}): Word fetches it, macros and
// all, when the document opens (remote template injection). A template on
// the local disk passes.
rule Portcullis_RTF_Remote_Template
{
  meta:
    description = "RTF document attaching a template on a share or web server: Word fetches it when the document opens"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1221/"
    severity = "high"
  strings:
    $unc = /\\\*\\template\s{0,10}(\\\\\\\\|\\'5[Cc]\\'5[Cc])/
    $url = /\\\*\\template\s{0,10}([Hh][Tt][Tt][Pp][Ss]?|[Ff][Ii][Ll][Ee]|[Ff][Tt][Pp]):/
  condition:
    uint32(0) == 0x74725C7B and any of them
}

// Excel 2003 XML (SpreadsheetML): a .xml with this processing instruction
// opens in Excel on a double-click. An Excel 4.0 macro sheet in it
// (Excel4MacroSheet, and an Auto_Open name that runs it) is a macro that
// clamd's XLM detection, which reads BIFF only, does not see.
rule Portcullis_SpreadsheetML_Excel4_Macro
{
  meta:
    description = "Excel 2003 XML workbook with an Excel 4.0 macro sheet or an Auto_Open name: macros clamd does not read in this format"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1059/"
    severity = "high"
  strings:
    $progid = /progid\s{0,5}=\s{0,5}["'][Ee][Xx][Cc][Ee][Ll]\.[Ss][Hh][Ee][Ee][Tt]/
    $macro_sheet = "Excel4MacroSheet" nocase
    $auto_open = /[Nn]amed[Rr]ange[^>]{0,200}["'][Aa][Uu][Tt][Oo]_[Oo][Pp][Ee][Nn]["']/
  condition:
    $progid and ($macro_sheet or $auto_open)
}

// Word 2003 XML (WordprocessingML) carrying a VBA project: its binData
// "editdata.mso" is an ActiveMime blob (a header, then the zlib'd compound
// file), which clamd does not decode, so the macro inside is never seen.
rule Portcullis_Word2003_XML_Macros
{
  meta:
    description = "Word 2003 XML document carrying a VBA project (editdata.mso ActiveMime data, or macros marked present)"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1137/"
    severity = "high"
  strings:
    $progid = /progid\s{0,5}=\s{0,5}["'][Ww][Oo][Rr][Dd]\.[Dd][Oo][Cc][Uu][Mm][Ee][Nn][Tt]/
    $editdata = "editdata.mso" nocase
    $macros = /macrosPresent\s{0,5}=\s{0,5}["'][Yy][Ee][Ss]/
    $activemime = "QWN0aXZlTWltZQ" nocase
  condition:
    $progid and ($editdata or $macros or $activemime)
}
