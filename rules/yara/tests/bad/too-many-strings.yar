rule Bad_Many
{
  meta:
    description = "bad rule corpus"
    author = "Portcullis"
    reference = "rules/yara/tests/bad"
    severity = "low"
  strings:
    $s0 = "portcullis-string-000" nocase
    $s1 = "portcullis-string-001" nocase
    $s2 = "portcullis-string-002" nocase
    $s3 = "portcullis-string-003" nocase
    $s4 = "portcullis-string-004" nocase
    $s5 = "portcullis-string-005" nocase
    $s6 = "portcullis-string-006" nocase
    $s7 = "portcullis-string-007" nocase
    $s8 = "portcullis-string-008" nocase
    $s9 = "portcullis-string-009" nocase
    $s10 = "portcullis-string-010" nocase
    $s11 = "portcullis-string-011" nocase
    $s12 = "portcullis-string-012" nocase
    $s13 = "portcullis-string-013" nocase
    $s14 = "portcullis-string-014" nocase
    $s15 = "portcullis-string-015" nocase
    $s16 = "portcullis-string-016" nocase
    $s17 = "portcullis-string-017" nocase
    $s18 = "portcullis-string-018" nocase
    $s19 = "portcullis-string-019" nocase
    $s20 = "portcullis-string-020" nocase
    $s21 = "portcullis-string-021" nocase
    $s22 = "portcullis-string-022" nocase
    $s23 = "portcullis-string-023" nocase
    $s24 = "portcullis-string-024" nocase
    $s25 = "portcullis-string-025" nocase
    $s26 = "portcullis-string-026" nocase
    $s27 = "portcullis-string-027" nocase
    $s28 = "portcullis-string-028" nocase
    $s29 = "portcullis-string-029" nocase
    $s30 = "portcullis-string-030" nocase
    $s31 = "portcullis-string-031" nocase
    $s32 = "portcullis-string-032" nocase
    $s33 = "portcullis-string-033" nocase
    $s34 = "portcullis-string-034" nocase
    $s35 = "portcullis-string-035" nocase
    $s36 = "portcullis-string-036" nocase
    $s37 = "portcullis-string-037" nocase
    $s38 = "portcullis-string-038" nocase
    $s39 = "portcullis-string-039" nocase
    $s40 = "portcullis-string-040" nocase
    $s41 = "portcullis-string-041" nocase
    $s42 = "portcullis-string-042" nocase
    $s43 = "portcullis-string-043" nocase
    $s44 = "portcullis-string-044" nocase
    $s45 = "portcullis-string-045" nocase
    $s46 = "portcullis-string-046" nocase
    $s47 = "portcullis-string-047" nocase
    $s48 = "portcullis-string-048" nocase
    $s49 = "portcullis-string-049" nocase
    $s50 = "portcullis-string-050" nocase
    $s51 = "portcullis-string-051" nocase
    $s52 = "portcullis-string-052" nocase
    $s53 = "portcullis-string-053" nocase
    $s54 = "portcullis-string-054" nocase
    $s55 = "portcullis-string-055" nocase
    $s56 = "portcullis-string-056" nocase
    $s57 = "portcullis-string-057" nocase
    $s58 = "portcullis-string-058" nocase
    $s59 = "portcullis-string-059" nocase
    $s60 = "portcullis-string-060" nocase
    $s61 = "portcullis-string-061" nocase
    $s62 = "portcullis-string-062" nocase
    $s63 = "portcullis-string-063" nocase
    $s64 = "portcullis-string-064" nocase
  condition:
    any of them
}
