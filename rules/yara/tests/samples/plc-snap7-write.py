import snap7

client = snap7.client.Client()
client.connect("192.168.0.1", 0, 1)
client.db_write(1, 0, bytearray(b"\x01"))
client.plc_stop()
