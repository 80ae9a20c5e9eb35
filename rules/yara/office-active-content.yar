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
