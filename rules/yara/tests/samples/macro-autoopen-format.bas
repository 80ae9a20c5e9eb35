Sub AutoOpen()
    ActiveDocument.Content.Font.Name = "Arial"
End Sub
