Sub RunReport()
    Shell "notepad.exe report.txt", vbNormalFocus
End Sub
