from pymodbus.client import ModbusTcpClient

c = ModbusTcpClient("10.0.0.2")
c.write_coil(1, True)
