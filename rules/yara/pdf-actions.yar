// PDF actions that start a program: a Launch action (ISO 32000-1 12.6.4.5),
// whether it is the document's /OpenAction, a page's or an annotation's.
// Names may spell letters as #hh escapes (7.3.5), so /L#61unch is /Launch;
// names are case-sensitive, so /launch is none.
// clamd runs the rule on the PDF and on the objects it decompresses from
// it (object streams included).

rule Portcullis_PDF_Launch_Action
{
  meta:
    description = "PDF with a Launch action: the reader starts a program or opens a file when it runs the action"
    author = "Portcullis"
    reference = "https://attack.mitre.org/techniques/T1204/002/"
    severity = "high"
  strings:
    $launch = /\/S\s{0,5}\/(L|#4[Cc])(a|#61)(u|#75)(n|#6[Ee])(c|#63)(h|#68)/
    $launch_escaped_s = /\/#53\s{0,5}\/(L|#4[Cc])(a|#61)(u|#75)(n|#6[Ee])(c|#63)(h|#68)/
  condition:
    any of them
}
